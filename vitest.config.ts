import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "lib/**/*.test.ts",
      "engine/**/*.test.ts",
      "dev/**/*.test.ts",
      "services/**/*.test.ts",
      "scripts/**/*.test.ts",
      "test/**/*.test.ts",
      "k8s/test/**/*.test.ts",
      "console/**/*.test.ts",
      "cli/**/*.test.ts",
    ],
    pool: "forks",
    // Suites own their schemas, streams and buckets, so files may run side by side.
    fileParallelism: true,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
  },
});
