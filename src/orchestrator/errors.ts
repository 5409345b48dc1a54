import { KlpforgeError } from '../util/errors.js';

/**
 * Codes of the orchestrator's errors. Each names one thing the user can act on;
 * the message says which file and what to do.
 */
export type OrchestratorErrorCode =
  | 'ORCH_BAD_CMD_FILE'
  | 'ORCH_NOT_A_BUILD_DIR'
  | 'ORCH_TREE_MISMATCH'
  | 'ORCH_PATCH_UNREADABLE'
  | 'ORCH_PATCH_EMPTY'
  | 'ORCH_PATCH_DOES_NOT_APPLY'
  | 'ORCH_VIEW_FAILED'
  | 'ORCH_UNSUPPORTED_COMMAND'
  | 'ORCH_COMPILE_FAILED'
  | 'ORCH_PROBE_FAILED'
  /** A runner's tool is missing or its engine is not running (bwrap, podman, docker, debootstrap). */
  | 'ORCH_RUNNER_UNAVAILABLE'
  /** Runner options that cannot work together (no --image for a container, a relative bind path). */
  | 'ORCH_RUNNER_OPTIONS'
  /** The sandbox rootfs could not be made (no Debian source, debootstrap failed, wrong compiler version). */
  | 'ORCH_ROOTFS_FAILED';

export class OrchestratorError extends KlpforgeError {
  declare readonly code: OrchestratorErrorCode;

  constructor(code: OrchestratorErrorCode, message: string, exitCode = 1) {
    super(code, message, exitCode);
  }
}
