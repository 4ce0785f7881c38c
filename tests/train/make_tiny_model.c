/* make_tiny_model.c: `fb_make_tiny_model DIR` writes a tiny random Llama model directory for the
 * trainer's Lua and command-line tests: hidden 32, 2 layers, a byte-level BPE tokenizer without
 * merges (ids 0-255 are the bytes) plus <|im_start|> and <|im_end|>, the chatml template. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fsutil.h"
#include "model.h"
#include "utf8.h"

static const char config[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 258, \"hidden_size\": 32,\n"
    " \"intermediate_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,\n"
    " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000,\n"
    " \"max_position_embeddings\": 256, \"eos_token_id\": 257, \"tie_word_embeddings\": false}\n";

static const char tokenizer_config[] =
    "{\"chat_template\": \"{% for m in messages %}<|im_start|>{{ m.role }}\\n{{ m.content "
    "}}<|im_end|>\\n{% endfor %}\",\n"
    " \"eos_token\": \"<|im_end|>\"}\n";

/* GPT-2's byte-to-character map: printable bytes stand for themselves, the rest 256 + n. */
static int byte_char(int b) {
  if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
    return b;
  int n = 0;
  for (int x = 0; x < b; x++)
    if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF)))
      n++;
  return 256 + n;
}

static cJSON *tokenizer(void) {
  cJSON *t = cJSON_CreateObject(), *added = cJSON_AddArrayToObject(t, "added_tokens");
  static const char *const specials[] = {"<|im_start|>", "<|im_end|>"};
  for (int i = 0; i < 2; i++) {
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 256 + i);
    cJSON_AddStringToObject(a, "content", specials[i]);
    cJSON_AddBoolToObject(a, "special", 1);
    cJSON_AddItemToArray(added, a);
  }
  cJSON *pre = cJSON_AddObjectToObject(t, "pre_tokenizer");
  cJSON_AddStringToObject(pre, "type", "ByteLevel");
  cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
  cJSON_AddBoolToObject(pre, "use_regex", 1);
  cJSON *dec = cJSON_AddObjectToObject(t, "decoder");
  cJSON_AddStringToObject(dec, "type", "ByteLevel");
  cJSON *model = cJSON_AddObjectToObject(t, "model"), *vocab;
  cJSON_AddStringToObject(model, "type", "BPE");
  vocab = cJSON_AddObjectToObject(model, "vocab");
  for (int b = 0; b < 256; b++) {
    char s[8] = {0};
    fb_utf8_encode(byte_char(b), s);
    cJSON_AddNumberToObject(vocab, s, b);
  }
  cJSON_AddArrayToObject(model, "merges");
  return t;
}

static int write_text(const char *dir, const char *name, const char *text) {
  char path[1024];
  fb_err err = {0};
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (fb_write_file_atomic(path, text, strlen(text), &err) == 0)
    return 0;
  fprintf(stderr, "%s\n", err.msg);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fb_make_tiny_model DIR\n");
    return 2;
  }
  const char *dir = argv[1];
  fb_err err = {0};
  fb_model_config c;
  fb_model *m = NULL;
  cJSON *tok = tokenizer();
  char *tok_text = cJSON_PrintUnformatted(tok), path[1024];
  cJSON_Delete(tok);
  snprintf(path, sizeof path, "%s/config.json", dir);
  int rc = fb_mkdir_p(dir, &err) || write_text(dir, "config.json", config) ||
           write_text(dir, "tokenizer.json", tok_text) ||
           write_text(dir, "tokenizer_config.json", tokenizer_config) ||
           fb_model_config_load(&c, path, &err) || fb_model_create(&m, &c, &err);
  cJSON_free(tok_text);
  if (!rc) {
    fb_model_init_random(m, 1, 0.3f);
    rc = fb_model_save(m, dir, dir, &err);
  }
  fb_model_free(m);
  if (rc && err.code)
    fprintf(stderr, "fb_make_tiny_model: %s\n", err.msg);
  return rc ? 1 : 0;
}
