// Prints the ABI of The Waku Network's membership contract (WakuRlnV2) as @waku/rln ships it
// for its clients, as JSON on stdout.
import { RLN_ABI } from "./node_modules/@waku/rln/dist/contract/abi/rln.js";

process.stdout.write(JSON.stringify(RLN_ABI));
