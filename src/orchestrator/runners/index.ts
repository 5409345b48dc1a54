/** Where build commands run: the host, a bwrap sandbox over a debootstrap rootfs, or a podman/docker container. */
export { createRunner, RUNNER_KINDS, type CreateRunnerOptions, type RunnerKind } from './create-runner.js';
export { BwrapRunner, bwrapArgv, type BwrapConfig } from './bwrap.js';
export { ContainerRunner, PodmanRunner, DockerRunner, containerArgv, type ContainerConfig, type ContainerEngine } from './container.js';
export { checkBwrap, checkContainerEngine } from './availability.js';
export { ensureRootfsImage, rootfsImageName, type RootfsImage } from './docker-image.js';
export type { BindPaths } from './binds.js';
export { ensureRootfs, type EnsureRootfsOptions, type Rootfs, type RootfsStamp } from './rootfs.js';
export { defaultRootfsSpec, defaultRootfsCacheDir, type RootfsSpec } from './rootfs-spec.js';
