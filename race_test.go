//go:build race

package librato

const raceEnabled = true
