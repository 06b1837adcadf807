// wanlab: the public TypeScript API.
export {
  benchLoad,
  defaultModel,
  dimsPresets,
  inspect,
  layouts,
  makeTiny,
  wanlabHome,
  type ComponentReport,
  type Dims,
  type InspectOptions,
  type InspectReport,
  type Layout,
  type LoadBenchResult,
  type MakeTinyOptions,
  type MemoryReport,
} from "./models.js";
