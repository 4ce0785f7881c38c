/* lora_check_main.c: a stand-alone `lora-check` executable for the tests until the command is
 * wired into fastbrain's subcommand table. Nothing but argument passing. */
#include "cmd_lora_check.h"

int main(int argc, char **argv) {
  argv[0] = "lora-check";
  return fb_cmd_lora_check(argc, argv);
}
