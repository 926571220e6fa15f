// Package calico holds what podpath knows about Calico: encapsulation
// overheads per encapsulation and IP family, the Pod MTU range, BIRD's
// control socket, peer naming.
package calico
