<?php
// Every SP of the benchmark, as bench/idp_compare.sh describes them in NYMGATE_SSP_DIR/sps.json:
// [{"entity_id", "acs_url", "cert_b64"}, ...]. Signed AuthnRequests are required of each.
$sps = json_decode(file_get_contents(getenv('NYMGATE_SSP_DIR') . '/sps.json'), true);
foreach ($sps as $sp) {
    $metadata[$sp['entity_id']] = [
        'AssertionConsumerService' => $sp['acs_url'],
        'certData' => $sp['cert_b64'],
        'validate.authnrequest' => true,
        'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
    ];
}
