// The TCP listener of a cluster: every worker accepts on the one listening socket itself.
//
// node:cluster's default (round-robin) has the primary accept every connection and pass its handle
// to a worker over IPC. For TCP that is a wasted hop: right after the login the connection moves
// again, to the worker owning the account's queue shard (./handoff.ts), so where it was accepted
// does not matter, and the primary's accept + send cost ~0.2 ms of CPU per login (13% of a core in a
// 30,000-login storm). So the TCP socket is shared the way cluster's SCHED_NONE shares one: worker
// slot 0 binds and listens (bypassing cluster), hands the listening socket's raw handle to the
// primary, and the primary gives it to every worker that asks, restarted ones included. The
// primary holds its copy without polling it (a raw handle starts no accept loop), so the socket stays
// open while workers come and go. The kernel wakes whichever worker is free to accept.
//
// The HTTP port (WebSocket, media) keeps cluster's round-robin: WebSocket connections are served
// where they land, so there the primary's balancing matters.
/** The primary's env for a worker: whether it creates the listening socket or receives it. */
export const TCP_LISTENER_ENV = "PARLEY_TCP_LISTENER";

/** Worker → primary: the raw handle of the listening socket it created (sent with the message). */
export interface TcpListenerOffer {
  parleyTcpListenerOffer: true;
}
/** Worker → primary: send me the listening socket. Primary → worker: here it is (with the handle). */
export interface TcpListenerRequest {
  parleyTcpListenerRequest: true;
}
export interface TcpListenerGrant {
  parleyTcpListener: true;
}

export function isTcpListenerOffer(msg: object): msg is TcpListenerOffer {
  return "parleyTcpListenerOffer" in msg;
}
export function isTcpListenerRequest(msg: object): msg is TcpListenerRequest {
  return "parleyTcpListenerRequest" in msg;
}
export function isTcpListenerGrant(msg: object): msg is TcpListenerGrant {
  return "parleyTcpListener" in msg;
}
