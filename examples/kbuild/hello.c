// SPDX-License-Identifier: GPL-2.0
/*
 * hello.c - an external module with static-call sites: cond_resched() is a
 * static call on a kernel with CONFIG_PREEMPT_DYNAMIC (Debian's), so each
 * call below is a site whose table objtool writes at build time.
 */
#include <linux/module.h>
#include <linux/sched.h>

static unsigned int rounds = 3;
module_param(rounds, uint, 0444);

static int __init hello_init(void)
{
	unsigned int i;

	for (i = 0; i < rounds; i++)
		cond_resched();
	pr_info("hello: %u rounds\n", rounds);
	return 0;
}

static void __exit hello_exit(void)
{
	cond_resched();
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
