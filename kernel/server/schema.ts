// The job request's JSON Schema, derived from kernel/params.ts: the property list is typed
// against GenerateParams (a field added there and missing here fails to compile), and the
// allowed values stay in resolveParams, which the server runs on every body that passes the
// schema. The schema checks shape (names, types, sizes) so fastify refuses malformed JSON
// before a handler runs; resolveParams checks ranges with the same messages as the API and CLI.
import { defaults, type GenerateParams } from "../params.js";

type JsonSchema = Record<string, unknown>;

const integer = { type: "integer" };
const number = { type: "number" };
const pair = { type: "array", items: integer, minItems: 2, maxItems: 2 };

/** Prompts longer than this are refused (the text encoder reads 512 tokens). */
export const maxPromptChars = 8192;

/** One entry per GenerateParams field; the mapped type makes this list complete and exact. */
export const paramSchemas: { [K in keyof Required<GenerateParams>]: JsonSchema } = {
  prompt: { type: "string", maxLength: maxPromptChars },
  negativePrompt: { type: "string", maxLength: maxPromptChars },
  // JSON numbers lose precision past 2^53: large seeds travel as decimal strings.
  seed: { anyOf: [integer, { type: "string", pattern: "^[0-9]{1,20}$" }] },
  numInferenceSteps: integer,
  cfgScale: number,
  guidanceScale: number,
  sigmaShift: number,
  height: integer,
  width: integer,
  numFrames: integer,
  tiled: { type: "boolean" },
  tileSize: pair,
  tileStride: pair,
  teaCacheL1Thresh: number,
  teaCacheModelId: { type: "string", maxLength: 64 },
  inputVideo: { type: "string", minLength: 1, maxLength: 4096 },
  denoisingStrength: number,
};

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

export const jobOptionSchemas: { [K in keyof Required<JobOptions>]: JsonSchema } = {
  output: { type: "string", minLength: 1, maxLength: 512 },
  fps: { type: "integer", minimum: 1, maximum: 240 },
  crf: { type: "integer", minimum: 0, maximum: 51 },
  saveTensors: { type: "boolean" },
};

export const jobFields = [...Object.keys(paramSchemas), ...Object.keys(jobOptionSchemas)];

/** POST /v1/jobs body. `required` and the defaults come from params.ts. */
export const jobBodySchema: JsonSchema = {
  type: "object",
  required: ["prompt"],
  additionalProperties: false,
  properties: { ...paramSchemas, ...jobOptionSchemas },
  description: `GenerateParams (defaults: ${JSON.stringify(defaults)}) and job options`,
};

/** POST /v1/plan body: the parameters of a job that would be submitted (the prompt may be left out). */
export const planBodySchema: JsonSchema = { ...jobBodySchema, required: [] };

/** The allowed values of a field, for error messages. */
export function allowedFor(field: string): string {
  const s = (paramSchemas as Record<string, JsonSchema>)[field] ?? (jobOptionSchemas as Record<string, JsonSchema>)[field];
  if (!s) return `one of the fields ${jobFields.join(", ")}`;
  if (s.anyOf) return "an integer from 0 to 2^64-1 (a decimal string beyond 2^53)";
  if (s.type === "array") return "[height, width], two integers";
  if (s.type === "integer" && s.minimum !== undefined) return `an integer from ${s.minimum} to ${s.maximum}`;
  if (s.type === "string" && s.maxLength) return `a string of at most ${s.maxLength} characters`;
  return `a${s.type === "integer" ? "n" : ""} ${s.type}`;
}
