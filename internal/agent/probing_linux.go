package agent

// errProbing is why this agent cannot send probes: nil on Linux.
var errProbing error
