/**
 * Vane's `experiment`: `{"experiment": ["experimentId", expr]}` evaluates `expr`; when it names a
 * variant, the compiled rule's assignment slot records the experiment, which makes the evaluation
 * an exposure.
 */
import type { Node, OperatorCall } from "../types.ts";

export function compileExperiment(c: OperatorCall): Node {
  const { raw, path, scope, state, issue, compileNode } = c;
  if (!Array.isArray(raw) || raw.length !== 2) return issue('experiment takes ["experimentId", expression]');
  const [id, expr] = raw;
  if (typeof id !== "string" || id === "") return issue("experiment: the id must be a non-empty string literal", `${path}[0]`);
  const inner = compileNode(expr, `${path}[1]`, scope, state).fn;
  const slot = (state.assignment ??= { experimentId: undefined });
  return {
    fn: (d) => {
      const r = inner(d);
      if (r !== null && r !== undefined) slot.experimentId = id;
      return r;
    },
    isConst: false,
  };
}
