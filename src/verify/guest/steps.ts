/**
 * The guest's test plan: the same contract as kpatch's -LOADED.test scripts.
 * Every check must fail before the patch is loaded, hold while it is loaded,
 * and fail again once it is disabled and removed. The plan is shared by the
 * guest-script generator (what runs) and the host's evaluation (what each
 * step's exit code means), so the two cannot drift apart.
 */

/** What a step is for; decides how the host explains it. */
export type StepKind =
  'check-before' | 'insmod' | 'wait-transition' | 'enabled' | 'check-loaded' | 'disable' | 'wait-unpatched' | 'rmmod' | 'check-after';

/** `succeed`: the step holds when its command exits 0; `fail`: when it exits non-zero. */
export type Expectation = 'succeed' | 'fail';

export interface PlannedStep {
  /** Stable id, used in marker lines and JSON: `before.1`, `insmod`, `loaded.2`, ... */
  readonly id: string;
  readonly kind: StepKind;
  /** One line for people: `check 1 fails before loading: grep -q ...`. */
  readonly title: string;
  readonly expect: Expectation;
  /**
   * Runs only while the patch got loaded: after a failed insmod these steps
   * are reported as skipped rather than as misleading failures.
   */
  readonly needsLoaded: boolean;
  /** Index into the user's --check list, for check steps. */
  readonly checkIndex?: number;
}

export interface TestPlan {
  /** Module name as the kernel knows it: file name without `.ko`, `-` turned into `_`. */
  readonly moduleName: string;
  readonly checks: readonly string[];
  readonly steps: readonly PlannedStep[];
}

/** Kernel module names: what kbuild derives from file names, and what sysfs shows. */
const MODULE_NAME = /^[A-Za-z0-9_]+$/;

/** `livepatch-sample.ko` -> `livepatch_sample`; null when the file name cannot be a module's. */
export function moduleNameFromFile(fileName: string): string | null {
  const base = fileName.replace(/^.*\//, '');
  if (!base.endsWith('.ko')) return null;
  const name = base.slice(0, -3).replace(/-/g, '_');
  return MODULE_NAME.test(name) ? name : null;
}

/** `labels[i]`, when given, names check i in the report instead of its whole text (a --check-file's path). */
export function planSteps(moduleName: string, checks: readonly string[], labels: readonly (string | undefined)[] = []): TestPlan {
  const steps: PlannedStep[] = [];
  const checkSteps = (phase: 'before' | 'loaded' | 'after'): void => {
    checks.forEach((text, i) => {
      const n = i + 1;
      const check = labels[i] ?? text;
      if (phase === 'before') {
        steps.push({
          id: `before.${n}`,
          kind: 'check-before',
          expect: 'fail',
          needsLoaded: false,
          checkIndex: i,
          title: `check ${n} fails before loading: ${check}`,
        });
      } else if (phase === 'loaded') {
        steps.push({
          id: `loaded.${n}`,
          kind: 'check-loaded',
          expect: 'succeed',
          needsLoaded: true,
          checkIndex: i,
          title: `check ${n} holds with the patch loaded: ${check}`,
        });
      } else {
        steps.push({
          id: `after.${n}`,
          kind: 'check-after',
          expect: 'fail',
          needsLoaded: true,
          checkIndex: i,
          title: `check ${n} fails again after unloading: ${check}`,
        });
      }
    });
  };
  const sysfs = `/sys/kernel/livepatch/${moduleName}`;
  checkSteps('before');
  steps.push({ id: 'insmod', kind: 'insmod', expect: 'succeed', needsLoaded: false, title: `insmod ${moduleName}.ko` });
  steps.push({
    id: 'transition',
    kind: 'wait-transition',
    expect: 'succeed',
    needsLoaded: true,
    title: `patch transition completes (${sysfs}/transition = 0)`,
  });
  steps.push({ id: 'enabled', kind: 'enabled', expect: 'succeed', needsLoaded: true, title: `patch is enabled (${sysfs}/enabled = 1)` });
  checkSteps('loaded');
  steps.push({
    id: 'disable',
    kind: 'disable',
    expect: 'succeed',
    needsLoaded: true,
    title: `disable the patch (echo 0 > ${sysfs}/enabled)`,
  });
  steps.push({
    id: 'unpatched',
    kind: 'wait-unpatched',
    expect: 'succeed',
    needsLoaded: true,
    title: `unpatch transition completes and ${sysfs} goes away`,
  });
  steps.push({ id: 'rmmod', kind: 'rmmod', expect: 'succeed', needsLoaded: true, title: `rmmod ${moduleName}` });
  checkSteps('after');
  return { moduleName, checks, steps };
}
