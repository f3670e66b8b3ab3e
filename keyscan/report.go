package keyscan

import (
	"encoding/json"
	"fmt"
	"io"
)

// RuleID names keyplane's rule in SARIF output.
const RuleID = "keyplane-api-key"

// Text writes "path:line:column: hint (commit)" per find; with
// showSecrets the key replaces the hint. status, when set, is appended.
func Text(w io.Writer, finds []Find, showSecrets bool, status []string) error {
	for i, f := range finds {
		what := f.Hint
		if showSecrets {
			what = f.Key
		}
		line := fmt.Sprintf("%s:%d:%d: %s", f.Path, f.Line, f.Column, what)
		if f.Commit != "" {
			line += " (commit " + f.Commit + ")"
		}
		if status != nil {
			line += " [" + status[i] + "]"
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

type jsonFind struct {
	Find
	Key    string `json:"key,omitempty"`
	Status string `json:"status,omitempty"`
}

// JSON writes the finds as a JSON array.
func JSON(w io.Writer, finds []Find, showSecrets bool, status []string) error {
	out := make([]jsonFind, len(finds))
	for i, f := range finds {
		out[i].Find = f
		if showSecrets {
			out[i].Key = f.Key
		}
		if status != nil {
			out[i].Status = status[i]
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// SARIF writes a SARIF 2.1.0 log for code-scanning uploads. It never
// carries a key, whatever showSecrets says.
func SARIF(w io.Writer, finds []Find, version string, status []string) error {
	results := make([]map[string]any, len(finds))
	for i, f := range finds {
		msg := "keyplane API key " + f.Hint
		if f.Commit != "" {
			msg += " in commit " + f.Commit
		}
		if status != nil {
			msg += " (" + status[i] + ")"
		}
		r := map[string]any{
			"ruleId":  RuleID,
			"level":   "error",
			"message": map[string]any{"text": msg},
			"locations": []any{map[string]any{"physicalLocation": map[string]any{
				"artifactLocation": map[string]any{"uri": f.Path},
				"region":           map[string]any{"startLine": f.Line, "startColumn": f.Column},
			}}},
			"partialFingerprints": map[string]any{"keyplaneHint/v1": f.Hint},
		}
		if f.Commit != "" {
			r["properties"] = map[string]any{"commit": f.Commit}
		}
		results[i] = r
	}
	log := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "keyplane scan", "version": version, "informationUri": "https://github.com/keyplane/keyplane",
				"rules": []any{map[string]any{
					"id": RuleID, "name": "KeyplaneAPIKey",
					"shortDescription":     map[string]any{"text": "A keyplane API key with a valid checksum"},
					"fullDescription":      map[string]any{"text": "A keyplane API key is in the source. Revoke or roll it, then remove it from the history."},
					"help":                 map[string]any{"text": "Roll the key in keyplane (POST /v1/keys/{id}/roll or the portal), then remove it from the file and the git history."},
					"defaultConfiguration": map[string]any{"level": "error"},
				}},
			}},
			"columnKind": "unicodeCodePoints",
			"results":    results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}
