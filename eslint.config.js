import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { layerConfigs } from "./eslint.layers.js";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "guest/", "coverage/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  ...layerConfigs(),
);
