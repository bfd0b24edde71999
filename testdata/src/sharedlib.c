/* A shared object with static calls through the shipped runtime's header
 * (tests/test_linked_local.py).  The trampoline is hidden, so after the
 * link it is a LOCAL symbol of the .so; its target is static, so that the
 * trampoline's jmp needs no PLT. */
#include <static_call.h>	/* the runtime's (-I"$(scall-objtool runtime-path)") */

static int lib_add(int a, int b)
{
	return a + b;
}

DEFINE_STATIC_CALL(sc_lib, lib_add);

__attribute__((noinline)) int lib_call(int a, int b)
{
	return static_call(sc_lib)(a, b) * 3;
}

__attribute__((noinline)) int lib_tail(int a)
{
	return static_call(sc_lib)(a, 1);
}
