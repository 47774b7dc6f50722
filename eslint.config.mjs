import tseslint from "typescript-eslint";
import pulumi from "@pulumi/eslint-plugin";

export default tseslint.config(
  // Plain CommonJS that node runs as it is: the root's configs, the policy pack's entry (policy/main.js).
  { ignores: ["node_modules/", "bin/", "coverage/", "out/", "*.js", "*.mjs", "policy/main.js"] },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { "@pulumi": pulumi },
    rules: {
      "@pulumi/no-output-in-template-literal": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  // Plain ES modules that node runs as they are (scripts/mermaid-parse.mjs): outside the TypeScript project.
  {
    files: ["**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    rules: { ...tseslint.configs.disableTypeChecked.rules, "@pulumi/no-output-in-template-literal": "off" },
  },
  // Tests break configs field by field: free-form objects are the point there.
  { files: ["test/**"], rules: { "@typescript-eslint/no-explicit-any": "off" } },
);
