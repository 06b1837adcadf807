// `wanlab demo` (`npm start`): the embedded default model, made on first use, and one short video.
import { defaultModel } from "../models.js";
import { terminalProgress } from "../terminal/progress.js";
import { runGenerate } from "./generate.js";
import { help, parseCommand } from "./parse.js";

export async function cmdDemo(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "demo");
  if (v.help) return help("demo");
  const progress = terminalProgress("embedded default model");
  const dir = await defaultModel((file, f) => progress.update(f, file));
  progress.done(`ready at ${dir}`);
  return runGenerate({
    model: dir,
    params: { prompt: "A cat walks on the street at night, cinematic, detailed.", negativePrompt: "blurry, low quality, static", seed: 42, numInferenceSteps: 10, height: 128, width: 128, numFrames: 9 },
    output: (v.output as string | undefined) ?? "wanlab-demo.mp4",
    // The demo's video is its own: each run replaces it (a regular file only), so \`npm start\` runs again.
    overwrite: true,
  });
}
