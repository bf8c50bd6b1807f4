// main.cpp: the tnl command-line tool.
#include <cstdio>
int main() { std::puts("tnl"); return 0; }
