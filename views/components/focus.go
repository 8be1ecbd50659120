package components

// FocusField names the field a re-rendered form should focus: the first of fields, in form
// order, that has an error, or the first field when none has.
func FocusField(errs map[string]string, fields ...string) string {
	for _, f := range fields {
		if errs[f] != "" {
			return f
		}
	}
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// AutofocusIf returns the autofocus attribute when on is true, for components taking Attrs.
func AutofocusIf(on bool) map[string]any {
	if on {
		return map[string]any{"autofocus": true}
	}
	return nil
}
