"""The rules every layer shares: what a session id and a name are, the delivery policy, the loop
guard's counters. Imports only relay.util."""
