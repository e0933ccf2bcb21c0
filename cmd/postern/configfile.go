package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"
)

// applyConfigFile reads --config (TOML, keys named like the flags) and sets
// every flag that was not given on the command line or in the environment.
// An unknown key is an error that names it, like an unknown flag (exit 2).
func applyConfigFile(c *cli.Context) error {
	path := c.String("config")
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	var values map[string]any
	if _, err := toml.Decode(string(raw), &values); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if !known[key] || key == "config" {
			// Exit 2, like an unknown flag (README).
			return usageErrorf("config file %s: unknown key %q%s", path, key, closestName(key, knownNames(known), "; did you mean %q?"))
		}
		if c.IsSet(key) {
			continue // command line and environment win over the file
		}
		var list []any
		switch v := values[key].(type) {
		case []any:
			list = v
		case map[string]any:
			return fmt.Errorf("config file %s: key %q: tables are not supported", path, key)
		default:
			list = []any{v}
		}
		for _, item := range list {
			if err := c.Set(key, fmt.Sprint(item)); err != nil {
				return fmt.Errorf("config file %s: key %q: %w", path, key, err)
			}
		}
	}
	return nil
}
