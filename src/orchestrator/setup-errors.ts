import { KlpforgeError } from '../util/errors.js';

/**
 * Errors of the steps before any patched compile: reading the inputs the user
 * named (.config, vmlinux, compiler) and the cache of original builds. A
 * separate class from OrchestratorError so these files need not edit its code
 * list; both are KlpforgeErrors the CLI prints as one line (exit 1).
 *
 * Problems found *in* valid inputs (a forbidden option, a compiler mismatch)
 * are values, not errors: the caller decides what to print and whether to go on.
 */
export type SetupErrorCode =
  /** The .config path does not exist or cannot be read. */
  | 'CONFIG_NOT_FOUND'
  /** The file is not a kernel .config (binary, a patch, no CONFIG_ lines…). */
  | 'CONFIG_NOT_A_CONFIG'
  /** The .config is for a machine klpforge does not build livepatches for. */
  | 'CONFIG_UNSUPPORTED_MACHINE'
  /** The vmlinux path does not exist or cannot be read. */
  | 'VMLINUX_NOT_FOUND'
  /** The file is not an ELF vmlinux (bzImage, vmlinuz) or holds no "Linux version" banner. */
  | 'VMLINUX_NOT_A_KERNEL'
  /** The compiler that would build the patch could not compile an empty file. */
  | 'COMPILER_UNUSABLE'
  /** The gcc plugin the machine's livepatch objects need (gcc-plugins/) did not build: its headers or g++ are missing. */
  | 'COMPILER_PLUGIN_FAILED'
  /** The source dir is not a kernel tree, or one kbuild refuses for O= builds. */
  | 'SOURCE_NOT_USABLE'
  /** The cache dir cannot be created or written. */
  | 'CACHE_UNUSABLE'
  /** A directory given to adoptBuild is not a complete build of the given inputs. */
  | 'CACHE_NOT_A_BUILD'
  /** make failed while building the original kernel; the message names the log. */
  | 'CACHE_BUILD_FAILED'
  /** Waiting for another process's build of the same key took longer than allowed. */
  | 'CACHE_LOCK_TIMEOUT'
  /** `--kernel debian:RELEASE` names a release the archive apt knows has no image for. */
  | 'KERNEL_UNKNOWN'
  /** A package the release needs (its -dbg symbols, headers, source) is not in the archive at that version. */
  | 'KERNEL_PACKAGE_MISSING'
  /** apt-get download failed: no network to the archive, or the archive refused. */
  | 'KERNEL_DOWNLOAD_FAILED'
  /** A downloaded package did not unpack (truncated, or not the expected layout). */
  | 'KERNEL_UNPACK_FAILED'
  /** Not enough free space where the kernel's packages and source would go. */
  | 'DISK_TOO_SMALL'
  /** A header patch reaches more objects than the lazy original compiles (the full original is the way). */
  | 'LAZY_TOO_MANY_OBJECTS'
  /** `--runner docker --image NAME`: the engine has no image by that name (klpforge never pulls one). */
  | 'RUNNER_IMAGE_MISSING'
  /** The docker runner's image could not be made from the debootstrap rootfs (tar, docker import or tag failed). */
  | 'RUNNER_IMAGE_FAILED';

export class SetupError extends KlpforgeError {
  declare readonly code: SetupErrorCode;

  constructor(code: SetupErrorCode, message: string, exitCode = 1) {
    super(code, message, exitCode);
  }
}
