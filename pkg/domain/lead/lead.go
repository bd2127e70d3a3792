// Package lead holds the rule for a C2S lead id, the one identifier that
// travels in subjects, message ids, URLs and logs. It is not personal data.
package lead

// ValidID reports whether id is safe as one URL path segment: 1-64
// characters of [A-Za-z0-9_-]. Real ids are 32 hex characters.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
