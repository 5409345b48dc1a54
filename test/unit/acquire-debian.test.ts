import { buildableConfig, configCompiler, parseDebianKernel } from '../../src/orchestrator/acquire/debian-kernel.js';
import { SetupError } from '../../src/orchestrator/setup-errors.js';

describe('--kernel debian:RELEASE', () => {
  test('names a release by its uname -r, flavour included; anything else is not a Debian kernel', () => {
    expect(parseDebianKernel('debian:6.1.0-57-amd64')).toBe('6.1.0-57-amd64');
    expect(parseDebianKernel('debian:6.1.0-57-cloud-amd64')).toBe('6.1.0-57-cloud-amd64');
    expect(parseDebianKernel('/boot/vmlinuz')).toBeUndefined();
    expect(parseDebianKernel('arch/x86/boot/bzImage')).toBeUndefined();
  });

  test('a malformed release is one error saying how to write it', () => {
    for (const bad of ['debian:', 'debian:6.1', 'debian:6.1.0-57', 'debian:linux-image-6.1.0-57-amd64']) {
      expect(() => parseDebianKernel(bad)).toThrow(SetupError);
      expect(() => parseDebianKernel(bad)).toThrow(
        /not a Debian kernel release; write debian:RELEASE with the image's uname -r, e.g. debian:6\.1\.0-57-amd64/,
      );
    }
  });
});

describe("Debian's config made buildable", () => {
  const config = [
    'CONFIG_SYSTEM_TRUSTED_KEYS="debian/certs/debian-uefi-certs.pem"',
    'CONFIG_SYSTEM_REVOCATION_KEYS="debian/revoked-certs"',
    'CONFIG_BUILD_SALT="6.1.0-57-amd64"',
    'CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"',
    'CONFIG_LIVEPATCH=y',
    '',
  ].join('\n');

  test("certificate files only Debian's build has and the build salt are cleared; every other line is kept", () => {
    expect(buildableConfig(config).split('\n')).toEqual([
      'CONFIG_SYSTEM_TRUSTED_KEYS=""',
      'CONFIG_SYSTEM_REVOCATION_KEYS=""',
      'CONFIG_BUILD_SALT=""',
      'CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"',
      'CONFIG_LIVEPATCH=y',
      '',
    ]);
  });

  test('the compiler kbuild must run is the one CONFIG_CC_VERSION_TEXT names (gcc-12), gcc when it names none', () => {
    expect(configCompiler(config)).toBe('gcc-12');
    expect(configCompiler('CONFIG_LIVEPATCH=y\n')).toBe('gcc');
  });
});
