/** The orchestrator's public API: kernel tree + cached build + patches → object pairs to diff. */
export {
  buildPatchedObjects,
  prepareView,
  type BuildPatchedObjectsOptions,
  type ObjectPair,
  type PatchedObjects,
  type PreparedView,
} from './views/patched-objects.js';
export { buildIndex, isSameTree, type BuildIndex, type IndexedObject, type ObjectPath, type SourcePath } from './kbuild/build-index.js';
export {
  affectedObjects,
  isBuildInput,
  type AffectedObject,
  type AffectedObjects,
  type NotLivepatchableObject,
} from './kbuild/affected.js';
export { isNative, machineByName, machineCompiler, machineMakeVars, machineOfConfig, type KernelMachine } from './kbuild/machine.js';
export { livepatchability, type Livepatchability, type NotLivepatchableReason } from './kbuild/livepatchable.js';
export {
  parseKbuildCmd,
  objectForCmdFile,
  recordedCommandBeside,
  type KbuildCompileRecord,
  type KbuildCmdFile,
} from './kbuild/kbuild-cmd.js';
export { parsePatchFiles, touchedPaths, type PatchFileChange, type FileChangeKind } from './views/patch-files.js';
export { createSourceView, applyPatches, type AppliedPatch } from './views/source-view.js';
export { recompileObject, rewriteCommand, type RecompileOptions, type RecompiledObject } from './views/recompile.js';
export { HostRunner, runnerSeeing, type Runner, type RunOptions, type RunResult } from './runners/runner.js';
export { OrchestratorError, type OrchestratorErrorCode } from './errors.js';
export { probeStructSizes, probeSource, type StructSizes } from './kbuild/struct-sizes.js';
export { objectOwners, type ObjectOwner } from './kbuild/object-owner.js';
export { SetupError, type SetupErrorCode } from './setup-errors.js';
export {
  parseKernelConfig,
  readKernelConfig,
  isEnabled,
  configString,
  canonicalConfig,
  configDifferences,
  type KernelConfig,
} from './kbuild/kconfig.js';
export {
  checkKernelConfig,
  CONFIG_RULES,
  type ConfigRule,
  type ConfigRuleKind,
  type ConfigProblem,
  type ConfigProblemCode,
} from './checks/config-check.js';
export {
  readVmlinux,
  readVmlinuxInfo,
  readElfIdentity,
  elfIdentity,
  kernelBanner,
  type VmlinuxInfo,
  type ElfIdentity,
} from './checks/vmlinux-info.js';
export {
  checkCompiler,
  compareCompilers,
  probeCompiler,
  compilerIds,
  compilerVersionLine,
  type CompilerCheck,
  type CompilerCheckOptions,
  type CompilerProblem,
} from './checks/compiler-check.js';
export {
  sourceKernelVersion,
  expectedKernelRelease,
  buildKernelRelease,
  checkKernelRelease,
  type ExpectedRelease,
  type ReleaseProblem,
} from './checks/kernel-release.js';
export { digestTree, type TreeDigest } from './original/tree-digest.js';
export { cacheKey, computeCacheKey, ORIGINAL_KCFLAGS, ORIGINAL_TARGETS, CACHE_RECIPE, type CacheKeyInputs } from './original/cache-key.js';
export { acquireLock, tryAcquireLock, type HeldLock, type LockHolder } from './original/cache-lock.js';
export {
  cacheLayout,
  lookupEntry,
  listEntries,
  sweepLeftovers,
  STAMP_FILE,
  type CacheEntryRecord,
  type CacheLayout,
} from './original/cache-entries.js';
export {
  ensureOriginalBuild,
  adoptBuild,
  lookupOriginalBuild,
  type OriginalBuild,
  type OriginalBuildOptions,
  type AdoptBuildOptions,
  type CacheInputs,
} from './original/original-cache.js';
export { LogProgress, PROGRESS_LINE, type BuildProgress } from './kbuild/make-progress.js';
