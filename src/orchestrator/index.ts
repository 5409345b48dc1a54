/** The orchestrator's public API: kernel tree + cached build + patches → object pairs to diff. */
export { buildPatchedObjects, prepareView, type BuildPatchedObjectsOptions, type ObjectPair, type PatchedObjects, type PreparedView } from './patched-objects.js';
export { buildIndex, isSameTree, type BuildIndex, type IndexedObject, type ObjectPath, type SourcePath } from './build-index.js';
export { affectedObjects, isBuildInput, type AffectedObject, type AffectedObjects, type NotLivepatchableObject } from './affected.js';
export { livepatchability, type Livepatchability, type NotLivepatchableReason } from './livepatchable.js';
export { parseKbuildCmd, objectForCmdFile, recordedCommandBeside, type KbuildCompileRecord, type KbuildCmdFile } from './kbuild-cmd.js';
export { parsePatchFiles, touchedPaths, type PatchFileChange, type FileChangeKind } from './patch-files.js';
export { createSourceView, applyPatches, type AppliedPatch } from './source-view.js';
export { recompileObject, rewriteCommand, type RecompileOptions, type RecompiledObject } from './recompile.js';
export { HostRunner, type Runner, type RunOptions, type RunResult } from './runner.js';
export { OrchestratorError, type OrchestratorErrorCode } from './errors.js';
export { probeStructSizes, probeSource, type StructSizes } from './struct-sizes.js';
export { objectOwners, type ObjectOwner } from './object-owner.js';
