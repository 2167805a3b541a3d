/**
 * protovalidate on every request, skipped for request types that declare no rule anywhere in
 * them: walking a message without rules (e.g. an evaluation request with a free-form Struct
 * context) still costs the validator tens of microseconds, which on the evaluation hot path is
 * more than the evaluation itself.
 */
import { hasOption, type DescMessage } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { field, message, oneof } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const ruled = new WeakMap<DescMessage, boolean>();

/** True when the message, or any message it contains, declares a protovalidate rule. */
export function hasValidationRules(desc: DescMessage, visiting = new Set<DescMessage>()): boolean {
  const known = ruled.get(desc);
  if (known !== undefined) return known;
  // A cycle adds no rule that the walk of its first member does not find.
  if (visiting.has(desc)) return false;
  visiting.add(desc);
  const found =
    hasOption(desc, message) ||
    desc.oneofs.some((o) => hasOption(o, oneof)) ||
    desc.fields.some((f) => hasOption(f, field) || (f.message !== undefined && hasValidationRules(f.message, visiting)));
  visiting.delete(desc);
  if (visiting.size === 0 || found) ruled.set(desc, found);
  return found;
}

/** Validates requests whose type has rules; passes the others straight through. */
export function createRuleAwareValidateInterceptor(): Interceptor {
  const validate = createValidateInterceptor();
  return (next) => {
    const validated = validate(next);
    return (req) => (hasValidationRules(req.method.input) ? validated(req) : next(req));
  };
}
