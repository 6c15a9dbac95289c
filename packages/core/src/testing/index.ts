/** Contract suites for implementations of core's interfaces (run them from your tests with tap). */
export { brokerContract, type BrokerContractSetup } from './broker-contract.js'
export { sessionStoreContract, type SessionStoreContractSetup } from './session-store-contract.js'
export { presenceStoreContract, type PresenceStoreContractSetup } from './presence-store-contract.js'
