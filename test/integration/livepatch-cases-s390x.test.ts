import { integrationCases } from '../helpers/integration.js';
import { crossKernel } from '../helpers/kernel-cross.js';
import { describeMachineCases, plainKernelOf } from '../helpers/machine-cases.js';

/**
 * The cases marked for s390x (case.json `machines`) on the s390x fixture
 * kernel, cross-built here (scripts/fetch-kernel --arch s390x) and booted in
 * qemu-system-s390x under TCG. The machine comes from the kernel's .config:
 * the same `klpforge build` command line as on x86_64, the lazy original
 * prepared from the plain build with s390x-linux-gnu-gcc.
 */
const cases = await integrationCases('s390x');

describe('s390x livepatch cases: klpforge build for the s390x kernel, then klpforge verify boots it in qemu-system-s390x', () => {
  describeMachineCases('s390x', cases, async () => plainKernelOf(await crossKernel('s390x')), 20);
});
