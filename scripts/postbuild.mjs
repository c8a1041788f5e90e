// Makes the CLI entry executable after tsc (npm links it as the `llmrt` bin).
import { chmodSync, existsSync } from "node:fs";
const bin = "dist/src/cli/main.js";
if (existsSync(bin)) chmodSync(bin, 0o755);
