// Preload for worker threads that import TypeScript agent modules (examples run from source):
// `--import tsx` registers tsx's loader in the main thread only on Node 20; its API works in
// workers too. Compiled JavaScript agent modules need no preload.
import { register } from "tsx/esm/api";

register();
