// Notebook display: video, progress, plots, interrupt (see each module).
export { inKernel, interruptAll, interruptible } from "./interrupt.js";
export { display, inspectValue, isDisplayable, makeDisplayable, plainBigints, publish, type Displayable, type MimeBundle } from "./mime.js";
export { notebookLoad, type NotebookLoad } from "./load.js";
export { latentFrameToRgb, latentPreview, wan21LatentRgbBias, wan21LatentRgbFactors, type LatentPreview } from "./preview.js";
export { bar, communication, emptyFigure, figure, heatmap, line, memory, memoryPlan, type Figure, type Trace } from "./plot.js";
export { notebookProgress, progressText, type NotebookProgress, type ProgressOptions, type RankRow } from "./progress.js";
export { displayConfig, encodeGif, encodeVideo, frameStrip, videoBundle, type EncodedVideo, type Png, type VideoFrames } from "./video.js";
export { compare, grid, isVideoLike, varyingLabels, type Grid, type GridOptions, type VideoLike } from "./grid.js";
export { valueBundle } from "./value.js";
