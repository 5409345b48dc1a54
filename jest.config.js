// Jest runs real ESM (node --experimental-vm-modules): yargs, execa and p-limit are ESM-only.
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
  testEnvironment: 'node',
};

export default {
  globalSetup: '<rootDir>/test/global-setup.js',
  projects: [
    // Fast: small objects compiled here with gcc/as, no kernel needed.
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    // Slow: real Linux 6.1 objects (scripts/fetch-kernel) and QEMU.
    { ...common, displayName: 'slow', testMatch: ['<rootDir>/test/slow/**/*.test.ts'] },
    // Integration: klpforge build + klpforge verify on the livepatch cases of kernel-fixtures/integration.
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
  ],
};
