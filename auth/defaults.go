package auth

// DefaultCacheSize is the number of remembered successes when NewCache is
// given a size of 0 or less.
const DefaultCacheSize = 1024
