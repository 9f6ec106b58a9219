/* SPDX-License-Identifier: Apache-2.0 */
/* cloakctl subcommands: each takes the argv after the subcommand name (argv[0] = its name)
 * and returns the process exit code (0 ok, 1 failure, 2 usage). */
#pragma once

int cloakctl_vm_config(int argc, char **argv);
int cloakctl_check(int argc, char **argv);
