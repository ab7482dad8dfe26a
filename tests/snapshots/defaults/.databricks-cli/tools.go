//go:build tools

// Package tools only names the module this folder pins: github.com/databricks/cli.
package tools

import _ "github.com/databricks/cli"
