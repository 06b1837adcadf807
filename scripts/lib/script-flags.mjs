// The flag tables of sweep.mjs, batch.mjs and fork.mjs, apart from the scripts so that their docs
// (docs/scripts.md, by ./docs-scripts.mjs) are made from the same tables as their --help.
import { defineFlags } from "./flags.mjs";
import { paramFlags, serverFlags } from "./wanlab.mjs";

/** scripts/sweep.mjs */
const swept = ["seed", "steps", "cfg-scale", "sigma-shift", "tea-cache-l1-thresh", "denoising-strength"];
export const sweepFlags = defineFlags([
  { flag: "prompt", type: "string", required: true, help: "what the videos show" },
  { flag: "cfg", type: "numbers", default: [5], help: "classifier-free guidance scales" },
  { flag: "shift", type: "numbers", default: [5], help: "sigma shifts of the schedule" },
  { flag: "steps", type: "numbers", default: [50], help: "denoising step counts", aliases: ["num-inference-steps"] },
  { flag: "tea-cache", type: "numbers", default: [0], help: "TeaCache thresholds, 0 is off" },
  { flag: "strength", type: "numbers", default: [1], help: "denoising strengths; below 1 needs --input-video" },
  { flag: "seeds", type: "numbers", default: [0], help: "noise seeds" },
  { flag: "out", type: "string", value: "DIR", default: "sweep", help: "where sweep.json, the runs' videos and manifests, the contact sheet and the report go" },
  ...paramFlags(swept),
  ...serverFlags,
], {
  name: "sweep.mjs",
  about: "A parameter sweep: one job per point of cfg × shift × steps × TeaCache × strength × seeds for\n" +
    "one prompt, on a wanlab server. Writes OUT/sweep.json, OUT/runs/NN-.../{video.mp4,manifest.json},\n" +
    "OUT/contact-sheet.png and OUT/report.html (also as OUT/sweep.html), which opens offline.\n" +
    "Exit: 0 all done, 1 a job failed, 2 usage.",
  examples: [
    'sweep.mjs --prompt "a cat" --cfg 3,5,7 --shift 3,5 --steps 10,20 --seeds 1,2 --out runs/sweep',
    'sweep.mjs --prompt "a cat" --tea-cache 0,0.1,0.2 --seeds 1,2',
    'sweep.mjs --prompt "a cat" --input-video in.mp4 --strength 0.4,0.7,1',
  ],
});

/** scripts/batch.mjs */
export const batchFlags = defineFlags([
  { flag: "prompts", type: "string", value: "FILE", required: true, help: "one prompt per line (.txt; # comments) or one GenerateParams object per line (.jsonl)" },
  { flag: "out", type: "string", value: "DIR", default: "batch", help: "where index.json, the jobs' videos and manifests, the contact sheet and the report go" },
  { flag: "dry-run", type: "boolean", help: "check every line and print the jobs it would submit; submit none" },
  { flag: "output", type: "string", value: "NAME", help: "the jobs' subfolder of the server's outputs" },
  ...paramFlags(),
  ...serverFlags,
], {
  name: "batch.mjs",
  about: "One job per line of --prompts on a wanlab server; the flags' parameters apply to every line (a JSONL\n" +
    "line's own fields win). Writes OUT/index.json, OUT/line-NNN/{video.mp4,manifest.json},\nOUT/contact-sheet.png and OUT/report.html, which opens offline.\n" +
    "Exit: 0 all done, 1 a job failed, 2 usage (a bad line is named FILE:LINE).",
  examples: [
    "batch.mjs --prompts prompts.txt --out runs/batch --steps 20",
    "batch.mjs --prompts grid.jsonl --model ~/models/Wan2.1-T2V-1.3B --budget auto",
  ],
});

/** scripts/fork.mjs */
export const forkFlags = defineFlags([
  { flag: "prompt", type: "string", required: true, help: "what the run shows up to step K" },
  { flag: "at", type: "integer", value: "K", required: true, help: "the step after which the run forks (1 to steps - 1)" },
  { flag: "prompts", type: "string", value: "FILE", help: "the continuations' prompts, one per line (# comments)", shown: "the run's prompt" },
  { flag: "cfg", type: "numbers", help: "the continuations' classifier-free guidance scales", shown: "the run's --cfg-scale" },
  { flag: "tea-cache", type: "numbers", default: [0], help: "the continuations' TeaCache thresholds, 0 is off" },
  { flag: "out", type: "string", value: "DIR", default: "fork", help: "where fork.safetensors, fork.json, the runs' videos and manifests and the contact sheet go" },
  ...paramFlags(["input-video", "denoising-strength"]),
  ...serverFlags,
], {
  name: "fork.mjs",
  about: "Runs one generation to step K on a local engine (the fork), then continues it on a wanlab server\n" +
    "once per point of prompt × cfg × TeaCache. Writes OUT/fork.safetensors, OUT/fork.json,\n" +
    "OUT/runs/NN-.../{video.mp4,manifest.json} and OUT/contact-sheet.png.\n" +
    "Exit: 0 all done, 1 a job failed, 2 usage.",
  examples: [
    'fork.mjs --prompt "a red fox in snow" --at 10 --steps 30 --cfg 3,5,7 --out runs/fork',
    'fork.mjs --prompt "a red fox in snow" --at 20 --prompts then.txt --model ~/models/Wan2.1-T2V-1.3B',
  ],
});
