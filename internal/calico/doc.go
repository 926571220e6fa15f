// Package calico holds what podpath knows about Calico: encapsulation
// overheads, BIRD's control socket, peer naming.
package calico
