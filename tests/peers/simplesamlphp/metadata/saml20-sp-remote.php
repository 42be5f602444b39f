<?php
// nymgate's SP, as the harness describes it (NYMGATE_SSP_DIR/sp.json): entity id, ACS URL and
// signing certificate. Signed AuthnRequests are required.
$sp = json_decode(file_get_contents(getenv('NYMGATE_SSP_DIR') . '/sp.json'), true);
$metadata[$sp['entity_id']] = [
    'AssertionConsumerService' => $sp['acs_url'],
    'certData' => $sp['cert_b64'],
    'validate.authnrequest' => true,
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
];
