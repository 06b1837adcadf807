// What a job of `wanlab serve` adds to the generation parameters: shared by the server
// (src/server/schema.ts types its JSON Schema against it), the client and the notebook layer,
// which must not load the server to name it.
import type { GenerateParams } from "../params.js";

/** What a job adds to the parameters: where and how its outputs are written. */
export interface JobOptions {
  /** A directory relative to the server's outputs directory; the job's files go in OUTPUT/ID/. */
  output?: string;
  fps?: number;
  crf?: number;
  /** Also write the float32 tensors (tensors.safetensors) beside the video. */
  saveTensors?: boolean;
}

export type JobRequest = GenerateParams & JobOptions;
