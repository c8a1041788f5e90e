// After tsc: makes the CLI entry executable (npm links it as the `llmrt` bin) and
// copies the server's static chat page next to the compiled server.
import { chmodSync, cpSync, existsSync } from "node:fs";
const bin = "dist/src/cli/main.js";
if (existsSync(bin)) chmodSync(bin, 0o755);
cpSync("src/server/web", "dist/src/server/web", { recursive: true });
