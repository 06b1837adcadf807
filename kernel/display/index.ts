// Notebook display: video, progress, plots, interrupt (see each module).
export { inKernel, interruptAll, interruptible } from "./interrupt.js";
export { display, isDisplayable, makeDisplayable, publish, type Displayable, type MimeBundle } from "./mime.js";
export { open, statsFigure, type NotebookLab, type NotebookResult } from "./notebook.js";
export { bar, figure, heatmap, line, type Figure, type Trace } from "./plot.js";
export { notebookProgress, progressText, type NotebookProgress } from "./progress.js";
export { displayConfig, encodeGif, encodeVideo, frameStrip, videoBundle, type EncodedVideo, type VideoFrames } from "./video.js";
