import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import * as flagdV2 from "#gen/flagd/evaluation/v2/evaluation_pb.js";
import { HealthCheckRequestSchema } from "#gen/grpc/health/v1/health_pb.js";
import { EvaluateRequestSchema } from "#gen/vane/evaluation/v1/evaluation_service_pb.js";
import { CreateFlagRequestSchema, UpdateFlagEnvironmentRequestSchema } from "#gen/vane/flags/v1/flag_service_pb.js";
import { hasValidationRules } from "#lib/server/validation.ts";

describe("hasValidationRules", () => {
  it("finds rules on fields, and in nested messages", () => {
    expect(hasValidationRules(EvaluateRequestSchema)).toBe(true);
    expect(hasValidationRules(CreateFlagRequestSchema)).toBe(true);
    expect(hasValidationRules(UpdateFlagEnvironmentRequestSchema)).toBe(true);
  });
  it("finds none where the contract declares none (flagd's protocol, health)", () => {
    expect(hasValidationRules(flagdV2.ResolveBooleanRequestSchema)).toBe(false);
    expect(hasValidationRules(HealthCheckRequestSchema)).toBe(false);
    expect(create(flagdV2.ResolveBooleanRequestSchema, { flagKey: "" }).flagKey).toBe("");
  });
});
