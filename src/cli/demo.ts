// `wanlab demo` (`npm start`): the embedded default model, made on first use, one short video,
// and the next three things to try.
import { runGenerate } from "./generate.js";
import { help, parseCommand } from "./parse.js";

/** What to try after the demo, as commands to paste: a notebook, a server job, a sweep. */
export const nextSteps = [
  "next, try (the tiny model is quick at the demo's size, slow at the 480×832×81 default):",
  "  a notebook    npx wanlab kernel install && jupyter lab notebooks/01-quickstart.ipynb",
  "  a server job  npx wanlab serve &",
  "                npx wanlab generate --server --prompt \"a lighthouse in a storm\" --seed 7 \\",
  "                  --height 128 --width 128 --num-frames 9 --steps 10",
  "  a sweep       npx wanlab sweep --prompt \"a cat\" --cfg 3,5,7 --seeds 1,2 --out runs/sweep \\",
  "                  --height 128 --width 128 --num-frames 9 --steps 10",
  "                (on that server: runs/sweep/report.html, which opens offline)",
  "  a real model  npx wanlab generate --model DIR --prompt \"...\"  (wanlab generate --help)",
];

export async function cmdDemo(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "demo");
  if (v.help) return help("demo");
  const code = await runGenerate({
    command: "demo",
    params: { prompt: "A cat walks on the street at night, cinematic, detailed.", negativePrompt: "blurry, low quality, static", seed: 42,
      numInferenceSteps: 10, height: 128, width: 128, numFrames: 9 },
    output: (v.output as string | undefined) ?? "wanlab-demo.mp4",
    // The demo's video is its own: each run replaces it (a regular file only), so `npm start` runs again.
    overwrite: true,
  });
  if (code === 0) console.error(nextSteps.join("\n"));
  return code;
}
