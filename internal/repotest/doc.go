// Package repotest holds tests of the repository itself rather than of a
// program: what may be committed. It has no code of its own and is imported
// by nothing.
package repotest
