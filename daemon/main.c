/* placeholder: written by the daemon core work */
int main(void) { return 1; }
