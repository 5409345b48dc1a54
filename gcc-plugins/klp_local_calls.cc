// klpforge: every direct call gets the TOC-restore slot of a call that may leave the object.
//
// On ppc64le (ELFv2) gcc emits `bl f` for a call it knows stays in the same
// object (same TOC: a static function, or any function of the file outside
// -fPIC), and `bl f; nop` for one that may not: the linker or the module
// loader turns the nop into `ld r2,24(r1)` when the call goes through a stub
// that switches TOCs. A livepatch moves a function into a module while its
// callees stay in vmlinux, so each of its calls to a once-local function must
// have that nop, or the module loader refuses it ("Expected nop after call").
//
// This plugin runs right after RTL expansion and gives each direct call's
// SYMBOL_REF a private copy marked external. The rs6000 back end then matches
// the call as non-local and prints `bl f` + `nop`. The function symbols
// themselves are untouched: only how calls to them are emitted changes.
// klpforge passes it with -fplugin= for vmlinux objects only (CFLAGS_KERNEL).
#include "gcc-plugin.h"
#include "plugin-version.h"
#include "tree.h"
#include "tree-pass.h"
#include "context.h"
#include "function.h"
#include "rtl.h"
#include "memmodel.h"
#include "emit-rtl.h"

int plugin_is_GPL_compatible;

namespace {

const pass_data local_calls_pass_data = {
    RTL_PASS,          /* type */
    "klp_local_calls", /* name */
    OPTGROUP_NONE,     /* optinfo_flags */
    TV_NONE,           /* tv_id */
    PROP_rtl,          /* properties_required */
    0,                 /* properties_provided */
    0,                 /* properties_destroyed */
    0,                 /* todo_flags_start */
    0,                 /* todo_flags_finish */
};

// The SYMBOL_REF a direct call calls, or null: (call (mem (symbol_ref))) inside the insn's pattern.
rtx *called_symbol(rtx pattern) {
  if (GET_CODE(pattern) == PARALLEL) pattern = XVECEXP(pattern, 0, 0);
  if (GET_CODE(pattern) == SET) pattern = SET_SRC(pattern);
  if (GET_CODE(pattern) != CALL) return nullptr;
  rtx mem = XEXP(pattern, 0);
  if (!MEM_P(mem)) return nullptr;
  rtx *target = &XEXP(mem, 0);
  return GET_CODE(*target) == SYMBOL_REF ? target : nullptr;
}

class local_calls_pass : public rtl_opt_pass {
 public:
  explicit local_calls_pass(gcc::context *ctx) : rtl_opt_pass(local_calls_pass_data, ctx) {}

  unsigned int execute(function *) override {
    for (rtx_insn *insn = get_insns(); insn; insn = NEXT_INSN(insn)) {
      if (!CALL_P(insn)) continue;
      rtx *target = called_symbol(PATTERN(insn));
      if (!target || SYMBOL_REF_EXTERNAL_P(*target)) continue;
      rtx copy = shallow_copy_rtx(*target);
      SYMBOL_REF_FLAGS(copy) |= SYMBOL_FLAG_EXTERNAL;
      *target = copy;
      INSN_CODE(insn) = -1;  // matched again as a non-local call
    }
    return 0;
  }
};

}  // namespace

int plugin_init(struct plugin_name_args *info, struct plugin_gcc_version *version) {
  if (!plugin_default_version_check(version, &gcc_version)) {
    fprintf(stderr, "%s: built for gcc %s, loaded by gcc %s\n", info->base_name, gcc_version.basever, version->basever);
    return 1;
  }
  // -fplugin-arg-klp_local_calls-off: loaded but idle, for copies that must match the running kernel's code.
  for (int i = 0; i < info->argc; i++)
    if (!strcmp(info->argv[i].key, "off")) return 0;
  struct register_pass_info pass;
  pass.pass = new local_calls_pass(g);
  pass.reference_pass_name = "expand";
  pass.ref_pass_instance_number = 1;
  pass.pos_op = PASS_POS_INSERT_AFTER;
  register_callback(info->base_name, PLUGIN_PASS_MANAGER_SETUP, nullptr, &pass);
  return 0;
}
