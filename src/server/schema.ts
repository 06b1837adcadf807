// The job request's JSON Schema, made from the option table (src/options/table.ts): the property
// list is typed against GenerateParams (a field added there and missing here fails to compile) and
// each property's shape is its table row's type, and the allowed values stay in resolveParams, which
// the server runs on every body that passes the schema. The schema checks shape (names, types,
// sizes) so fastify refuses malformed JSON before a handler runs; resolveParams checks ranges with
// the same messages as the API and CLI.
import { defaults, maxLoras, type GenerateParams } from "../params.js";
import { jobOptionRow, maxPromptChars, paramRowsByKey, type OptionRow } from "../options/table.js";

export { maxPromptChars };

type JsonSchema = Record<string, unknown>;

const integer = { type: "integer" };
const number = { type: "number" };
const pair = { type: "array", items: integer, minItems: 2, maxItems: 2 };
const numberList = { type: "array", items: number, maxItems: 1000 };
const loraList = {
  type: "array", maxItems: maxLoras,
  items: { type: "object", required: ["path"], additionalProperties: false,
    properties: { path: { type: "string", minLength: 1, maxLength: 4096 }, scale: number, strict: { type: "boolean" } } },
};

/** A parameter's JSON shape from its table row. */
function schemaOf(r: OptionRow): JsonSchema {
  switch (r.type) {
    case "integer": return integer;
    case "number": return number;
    case "boolean": return { type: "boolean" };
    // JSON numbers lose precision past 2^53: large seeds travel as decimal strings.
    case "seed": return { anyOf: [integer, { type: "string", pattern: "^[0-9]{1,20}$" }] };
    case "pair": return pair;
    case "loras": return loraList;
    case "numbers": return numberList;
    case "string":
      return { type: "string", ...(r.minLength !== undefined ? { minLength: r.minLength } : {}), ...(r.maxLength !== undefined ? { maxLength: r.maxLength } : {}) };
    default: throw new Error(`no JSON schema for a ${r.type} parameter (${r.key})`);
  }
}

/** Every GenerateParams field, in the order the server's messages list them; the mapped type makes
 * this list complete and exact. */
const paramKeys: { [K in keyof Required<GenerateParams>]: true } = {
  prompt: true, negativePrompt: true, seed: true, numInferenceSteps: true, cfgScale: true, guidanceScale: true, sigmaShift: true,
  height: true, width: true, numFrames: true, tiled: true, tileSize: true, tileStride: true, teaCacheL1Thresh: true,
  teaCacheModelId: true, inputVideo: true, denoisingStrength: true, loras: true,
  timesteps: true, resume: true,
};

/** One entry per GenerateParams field, from its row in the option table. */
export const paramSchemas = Object.fromEntries(Object.keys(paramKeys).map((k) => {
  const row = paramRowsByKey.get(k);
  if (!row) throw new Error(`the option table has no row for the parameter ${k}`);
  return [k, schemaOf(row)];
})) as { [K in keyof Required<GenerateParams>]: JsonSchema };

import type { JobOptions } from "../shared/jobs.js";
export type { JobOptions, JobRequest } from "../shared/jobs.js";

export const jobOptionSchemas: { [K in keyof Required<JobOptions>]: JsonSchema } = {
  output: { type: "string", minLength: 1, maxLength: 512 },
  // The CLI's --fps and --crf: the same rows, the same ranges.
  fps: { type: "integer", minimum: jobOptionRow("fps").range![0], maximum: jobOptionRow("fps").range![1] },
  crf: { type: "integer", minimum: jobOptionRow("crf").range![0], maximum: jobOptionRow("crf").range![1] },
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
  if (s === numberList) return "an array of at most 1000 numbers";
  if (s === loraList) return `an array of at most ${maxLoras} { path, scale, strict } objects`;
  if (s.type === "array") return "[height, width], two integers";
  if (s.type === "integer" && s.minimum !== undefined) return `an integer from ${s.minimum} to ${s.maximum}`;
  if (s.type === "string" && s.maxLength) return `a string of at most ${s.maxLength} characters`;
  return `a${s.type === "integer" ? "n" : ""} ${s.type}`;
}
