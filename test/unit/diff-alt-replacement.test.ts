import { diffObjects } from '../../src/diff/index.js';
import { changedAndNew as names, refusalCodes as codes, kernelLikeDiffer } from '../helpers/kernel-like-diff.js';

/**
 * x86's alternatives as the kernel lays them out (6.1 struct alt_instr: s32
 * instr_offset, s32 repl_offset, u16 cpuid, u8 instrlen, u8 replacementlen):
 * every function's replacement code shares the file's one .altinstr_replacement.
 */
const PRELUDE = String.raw`
extern int consume(long x);
#define ALT(orig, repl) asm volatile("661: " orig "\n662:\n" \
  ".pushsection .altinstructions,\"a\"\n .long 661b - .\n .long 6641f - .\n .word 0x123\n" \
  " .byte 662b-661b\n .byte 6642f-6641f\n.popsection\n" \
  ".pushsection .altinstr_replacement,\"ax\"\n6641: " repl "\n6642:\n.popsection" ::: "memory")
`;

const SRC = `
int a(long x) { return consume(x); }
int b(long x) { ALT("nop; nop; nop", "lfence"); return consume(x + 1); }
int c(long x) { ALT("nop; nop; nop", "mfence"); return consume(x + 2); }
`;

describe('alternatives: a replacement is compared by its own code, not by where the file put it', () => {
  const { objects } = kernelLikeDiffer(PRELUDE);

  it('a replacement added to an earlier function moves the others but changes only that function', async () => {
    const [o, p] = await objects(SRC, SRC.replace('int a(long x) { return', 'int a(long x) { ALT("nop; nop; nop", "sfence"); return'));
    const r = diffObjects(o, p, { output: true });
    expect(codes(r)).toEqual([]);
    expect(names(r)).toEqual({ changed: ['a'], new: [] });
  });

  it('a function whose replacement code changed is changed, through its entries alone', async () => {
    const [o, p] = await objects(SRC, SRC.replace('"lfence"', '"mfence"'));
    const r = diffObjects(o, p, { output: true });
    expect(names(r)).toEqual({ changed: ['b'], new: [] });
    expect(r.changed[0]!.firstDifference!.what).toBe('its .altinstructions entries changed');
  });
});
