import { existsSync } from 'node:fs';
import path from 'node:path';
import { OrchestratorError } from '../errors.js';
import { ensureRootfs, type Rootfs } from './rootfs.js';
import { HostRunner, type Runner } from './runner.js';
import { checkBwrap, checkContainerEngine } from './availability.js';
import { resolveBindPaths, type BindPaths } from './binds.js';
import { BwrapRunner } from './bwrap.js';
import { DockerRunner, PodmanRunner } from './container.js';
import { checkImageExists, ensureRootfsImage } from './docker-image.js';

/**
 * The one place `--runner` is turned into a Runner. The tool is checked
 * before anything is built; for bwrap the rootfs is made here when none is
 * given (once, cached: minutes the first time), and for docker without
 * --image the image is imported from that same rootfs (once, seconds).
 */

export type RunnerKind = 'host' | 'bwrap' | 'podman' | 'docker';
export const RUNNER_KINDS: readonly RunnerKind[] = ['host', 'bwrap', 'podman', 'docker'];

export interface CreateRunnerOptions {
  kind: RunnerKind;
  /** podman/docker: the image to build in (required for podman; docker makes one from the rootfs without it). */
  image?: string;
  /** bwrap: a ready root filesystem; without it, the cached debootstrap one (made if missing). */
  rootfs?: string;
  /** bwrap, and docker without --image: where made rootfs entries are cached (default ~/.cache/klpforge/rootfs). */
  rootfsCacheDir?: string;
  /** podman/docker: the engine's client program (default: the engine's name; tests substitute fakes). */
  program?: string;
  /** Host paths seen inside at their own paths, read-only (the source tree). Ignored by the host runner. */
  readOnly: readonly string[];
  /** Host paths seen inside at their own paths, writable (build and work dirs). Ignored by the host runner. */
  writable: readonly string[];
  /** Progress lines (making the rootfs takes minutes). */
  onProgress?: (line: string) => void;
}

const badOptions = (message: string): OrchestratorError => new OrchestratorError('ORCH_RUNNER_OPTIONS', message);

export async function createRunner(o: CreateRunnerOptions): Promise<Runner> {
  if (!RUNNER_KINDS.includes(o.kind)) throw badOptions(`--runner ${String(o.kind)}: not a runner: use one of ${RUNNER_KINDS.join(', ')}`);
  const isContainer = o.kind === 'podman' || o.kind === 'docker';
  if (o.image !== undefined && !isContainer) throw badOptions(`--image is for --runner podman or docker, not ${o.kind}: drop it`);
  if (o.rootfs !== undefined && o.kind !== 'bwrap') throw badOptions(`--rootfs is for --runner bwrap, not ${o.kind}: drop it`);
  if (o.kind === 'host') return new HostRunner();

  const binds: BindPaths = await resolveBindPaths({ readOnly: o.readOnly, writable: o.writable });
  if (o.kind === 'podman' || o.kind === 'docker') {
    // podman's runtime does not run on the machines klpforge is tested on, so it gets no image made for it (docs/cli.md).
    if (!o.image && o.kind === 'podman') {
      throw badOptions('--runner podman needs --image: an image with the compiler that built the target kernel');
    }
    const program = o.program ?? o.kind;
    await checkContainerEngine(o.kind, program);
    const image = o.kind === 'podman' ? o.image! : await dockerImage(o, program);
    const config = { ...binds, image, program, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    return o.kind === 'podman' ? new PodmanRunner(config) : new DockerRunner(config);
  }

  await checkBwrap();
  return new BwrapRunner({ ...binds, rootfs: await bwrapRootfs(o) });
}

/** --image as given (it must exist), else the image of the bwrap runner's rootfs (each made if missing). */
async function dockerImage(o: CreateRunnerOptions, program: string): Promise<string> {
  if (o.image !== undefined) {
    await checkImageExists(program, o.image);
    return o.image;
  }
  const rootfs = await cachedRootfs(o);
  return (await ensureRootfsImage({ rootfs, program, ...(o.onProgress ? { onProgress: o.onProgress } : {}) })).image;
}

function cachedRootfs(o: CreateRunnerOptions): Promise<Rootfs> {
  return ensureRootfs({
    ...(o.rootfsCacheDir ? { cacheDir: o.rootfsCacheDir } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
}

async function bwrapRootfs(o: CreateRunnerOptions): Promise<string> {
  if (o.rootfs === undefined) return (await cachedRootfs(o)).path;
  const rootfs = path.resolve(o.rootfs);
  if (!existsSync(path.join(rootfs, 'bin/sh'))) {
    throw badOptions(
      `--rootfs ${o.rootfs}: not a root filesystem (no bin/sh): give a directory made by debootstrap, or drop --rootfs to let klpforge make one`,
    );
  }
  return rootfs;
}
