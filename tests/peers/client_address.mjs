// Preloaded into every node test client (`node --import ./client_address.mjs`): when
// NYMGATE_TEST_CLIENT_ADDRESS is set, every fetch connects from that loopback address. Nothing
// else on the machine uses it, so the privacy scan can look for the raw client IP everywhere
// and find only what nymgate leaked (its reduced form, a /24, is logged by design).
import { Agent, setGlobalDispatcher } from 'undici';

const localAddress = process.env.NYMGATE_TEST_CLIENT_ADDRESS;
if (localAddress) setGlobalDispatcher(new Agent({ localAddress }));
