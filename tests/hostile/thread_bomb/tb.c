#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void* park(void* arg) { (void)arg; for (;;) pause(); return 0; }
int main(void) {
  long made = 0, failed = 0;
  for (;;) {
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 65536);
    if (pthread_create(&t, &a, park, 0) == 0) made++;
    else if (failed++ == 0) { printf("thread limit after %ld threads\n", made); fflush(stdout); }
  }
}
