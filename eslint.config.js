import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["gen/**", "proto-deps/**", "node_modules/**", "dist/**", ".vane/**", "console/dist/**", "cli/dist/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // Migrations and protocol fixtures are written against untyped shapes on purpose.
      "@typescript-eslint/no-explicit-any": "warn",
    },
  },
  {
    files: ["**/migrations/**/*.ts", "**/*.test.ts", "**/test/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off", "@typescript-eslint/no-non-null-assertion": "off" },
  },
);
